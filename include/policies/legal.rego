# Legal rule set: a bundle must be lawful to switch on.
#
# - metadata.authority: the legal citation the rule implements is present.
# - input.effective_at (the protocol's effective time, RFC 3339) is after input.now and not inside
#   a freeze window that applies to the activation environment(s) (data.compliance.legal; a window
#   with no environments applies to all).
# - input.approval_policy (the pipeline settings tightened by the protocol's `approvals`) names at
#   least two distinct roles, so no single office can push a rule alone.
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

effective_ns := time.parse_rfc3339_ns(input.effective_at)

deny contains finding if {
	effective_ns <= time.parse_rfc3339_ns(input.now)
	finding := {
		"rule_set": "legal",
		"path": "metadata.effective_at",
		"message": sprintf("effective time %s is not in the future (now %s)", [input.effective_at, input.now]),
	}
}

applies(window) if count(object.get(window, "environments", [])) == 0

applies(window) if {
	some env in window.environments
	env in cfg.activation_environments
}

deny contains finding if {
	some window in object.get(input, "freeze_windows", [])
	applies(window)
	time.parse_rfc3339_ns(window.start) <= effective_ns
	effective_ns < time.parse_rfc3339_ns(window.end)
	finding := {
		"rule_set": "legal",
		"path": "metadata.effective_at",
		"message": sprintf(
			"effective time %s falls in freeze window %s – %s (%s)",
			[input.effective_at, window.start, window.end, object.get(window, "reason", "no reason given")],
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
