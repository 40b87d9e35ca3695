package legal_test

import data.legal

ok_input := {
	"protocol": {"metadata": {"authority": "Pub. L. 118-XX, sec. 3", "effective_at": "2026-12-01T00:00:00-05:00"}},
	"effective_at": "2026-12-01T00:00:00-05:00",
	"activation_at": "2026-12-01T00:00:00-05:00",
	"now": "2026-11-23T09:00:00+00:00",
	"freeze_windows": [{
		"start": "2026-12-24T00:00:00-05:00", "end": "2026-12-27T00:00:00-05:00",
		"environments": ["prod"], "reason": "year-end change freeze",
	}],
	"approval_policy": {"required": 2, "roles": ["legal", "budget"]},
}

paths(findings) := {f.path | some f in findings}

test_complete_protocol_is_clean if {
	count(legal.deny) == 0 with input as ok_input
}

test_missing_authority_is_a_finding if {
	findings := legal.deny with input as json.remove(ok_input, ["protocol/metadata/authority"])
	paths(findings) == {"metadata.authority"}
}

test_blank_authority_is_a_finding if {
	findings := legal.deny with input as json.patch(
		ok_input,
		[{"op": "replace", "path": "/protocol/metadata/authority", "value": " "}],
	)
	paths(findings) == {"metadata.authority"}
}

# Approved after its effective date: in force from deployment, not retroactively; no finding.
test_effective_time_in_the_past_is_no_finding if {
	late := {"now": "2026-12-02T15:00:00Z", "activation_at": "2026-12-02T15:00:00Z"}
	count(legal.deny) == 0 with input as object.union(ok_input, late)
}

test_activation_in_a_prod_freeze_window_is_a_finding if {
	at := "2026-12-25T00:00:00-05:00"
	findings := legal.deny with input as object.union(ok_input, {"effective_at": at, "activation_at": at})
	paths(findings) == {"metadata.effective_at"}
	some f in findings
	contains(f.message, "year-end change freeze")
}

# The effective time has passed and "now" (when it would come into force) is inside the freeze.
test_late_activation_in_a_freeze_window_is_a_finding if {
	late := {"now": "2026-12-25T12:00:00Z", "activation_at": "2026-12-25T12:00:00Z"}
	findings := legal.deny with input as object.union(ok_input, late)
	paths(findings) == {"metadata.effective_at"}
}

test_freeze_window_end_is_exclusive if {
	at := "2026-12-27T00:00:00-05:00"
	count(legal.deny) == 0 with input as object.union(ok_input, {"effective_at": at, "activation_at": at})
}

test_window_for_other_environments_does_not_apply if {
	window := {"start": "2026-11-30T00:00:00Z", "end": "2026-12-02T00:00:00Z", "environments": ["staging"], "reason": "x"}
	count(legal.deny) == 0 with input as object.union(ok_input, {"freeze_windows": [window]})
}

test_window_without_environments_applies_everywhere if {
	window := {"start": "2026-11-30T00:00:00Z", "end": "2026-12-02T00:00:00Z", "environments": [], "reason": "audit"}
	findings := legal.deny with input as object.union(ok_input, {"freeze_windows": [window]})
	paths(findings) == {"metadata.effective_at"}
}

test_one_role_approval_policy_is_a_finding if {
	findings := legal.deny with input as object.union(ok_input, {"approval_policy": {"required": 2, "roles": ["legal"]}})
	paths(findings) == {"approvals.roles"}
}

test_duplicate_roles_count_once if {
	policy := {"required": 2, "roles": ["legal", "legal"]}
	findings := legal.deny with input as object.union(ok_input, {"approval_policy": policy})
	paths(findings) == {"approvals.roles"}
}

test_missing_approval_policy_is_a_finding if {
	findings := legal.deny with input as json.remove(ok_input, ["approval_policy"])
	paths(findings) == {"approvals.roles"}
}

exempted_input := json.patch(ok_input, [{"op": "add", "path": "/protocol/inputs", "value": {"age": {
	"type": "integer", "data_class": "protected", "protected_characteristic": "age", "purpose": "children only",
	"exemption": {"authority": "42 U.S.C. 1397jj(c)(1)", "reason": "the statute draws the age line"},
}}}])

test_exemption_with_the_legal_role_in_the_approval_policy_is_clean if {
	count(legal.deny) == 0 with input as exempted_input
}

test_exemption_without_the_legal_role_is_a_finding if {
	policy := {"required": 2, "roles": ["budget", "program"]}
	findings := legal.deny with input as object.union(exempted_input, {"approval_policy": policy})
	paths(findings) == {"approvals.roles"}
	some f in findings
	contains(f.message, "legal role must approve")
}
