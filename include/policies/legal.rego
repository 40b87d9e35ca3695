# Legal rule set: a bundle must be lawful to switch on.
#
# - metadata.authority: the legal citation the rule implements is present.
# - input.activation_at (when the bundle would come into force: the later of the protocol's
#   effective_at and now, RFC 3339) is not inside a freeze window that applies to the activation
#   environment(s) (data.compliance.legal; a window with no environments applies to all).
#   An effective time that has passed is no finding by itself: a rule approved after its effective
#   date comes into force when it is deployed, not retroactively (src/hms/effective_time.py).
# - input.approval_policy (the pipeline settings tightened by the protocol's `approvals`) names at
#   least two distinct roles, so no single office can push a rule alone; and, when an input declares
#   an exemption (a protected characteristic read under a legal authority), the legal role among them.
package legal

cfg := data.compliance.legal

has_authority if trim_space(input.protocol.metadata.authority) != ""

deny contains finding if {
	not has_authority
	finding := {
		"rule_set": "legal",
		"path": "metadata.authority",
		"message": "no authority: cite the law this rule implements (metadata.authority)",
	}
}

activation_ns := time.parse_rfc3339_ns(input.activation_at)

applies(window) if count(object.get(window, "environments", [])) == 0

applies(window) if {
	some env in window.environments
	env in cfg.activation_environments
}

deny contains finding if {
	some window in object.get(input, "freeze_windows", [])
	applies(window)
	time.parse_rfc3339_ns(window.start) <= activation_ns
	activation_ns < time.parse_rfc3339_ns(window.end)
	finding := {
		"rule_set": "legal",
		"path": "metadata.effective_at",
		"message": sprintf(
			"activation at %s (effective time %s) falls in freeze window %s – %s (%s)",
			[input.activation_at, input.effective_at, window.start, window.end, object.get(window, "reason", "no reason given")],
		),
	}
}

roles := {role | some role in object.get(input, ["approval_policy", "roles"], [])}

deny contains finding if {
	count(roles) < cfg.min_approval_roles
	finding := {
		"rule_set": "legal",
		"path": "approvals.roles",
		"message": sprintf(
			"the approval policy names %d role(s) %v; at least %d distinct roles must approve",
			[count(roles), sort(roles), cfg.min_approval_roles],
		),
	}
}

exempted := sort([field | some field, spec in input.protocol.inputs; is_object(object.get(spec, "exemption", null))])

deny contains finding if {
	count(exempted) > 0
	not cfg.exemption_role in roles
	finding := {
		"rule_set": "legal",
		"path": "approvals.roles",
		"message": sprintf(
			"input(s) %s declare an exemption, so the %s role must approve; the approval policy names %v",
			[concat(", ", exempted), cfg.exemption_role, sort(roles)],
		),
	}
}
