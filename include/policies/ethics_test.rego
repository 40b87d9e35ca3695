package ethics_test

import data.compliance.names
import data.ethics

protocol(inputs) := {"inputs": inputs, "tests": []}

paths(findings) := {f.path | some f in findings}

test_rules_reading_only_neutral_fields_are_clean if {
	count(ethics.deny) == 0 with input as {
		"protocol": protocol({"household_income": {"type": "number"}}),
		"fields_read": {"eligible": ["household_income"]},
	}
}

test_rule_reading_race_is_a_finding_naming_the_rule if {
	findings := ethics.deny with input as {
		"protocol": protocol({"race": {"type": "string"}, "income": {"type": "number"}}),
		"fields_read": {"eligible": ["income", "race"], "amount": ["income", "race"], "base": ["income"]},
	}
	paths(findings) == {"inputs.race"}
	some f in findings
	f.rule_set == "ethics"
	contains(f.message, "amount, eligible")
}

test_declared_but_unread_protected_attribute_is_not_an_ethics_finding if {
	count(ethics.deny) == 0 with input as {
		"protocol": protocol({"sex": {"type": "string"}, "income": {"type": "number"}}),
		"fields_read": {"eligible": ["income"]},
	}
}

test_protected_attribute_names_are_matched_as_words if {
	ethics.protected("applicant_age")
	ethics.protected("Gender")
	ethics.protected("national-origin")
	ethics.protected("race_ethnicity")
	not ethics.protected("wage")
	not ethics.protected("average_income")
	not ethics.protected("trace_id")
}

test_justification_citing_law_exempts if {
	count(ethics.deny) == 0 with input as {
		"protocol": protocol({"age": {
			"type": "integer",
			"justification": "42 U.S.C. 1397jj(c)(1): a targeted low-income child is under 19",
		}}),
		"fields_read": {"eligible": ["age"]},
	}
}

test_justification_citing_no_law_is_a_finding if {
	findings := ethics.deny with input as {
		"protocol": protocol({"age": {"type": "integer", "justification": "seemed sensible"}}),
		"fields_read": {"eligible": ["age"]},
	}
	paths(findings) == {"inputs.age.justification"}
}

test_citation_forms_are_recognized if {
	ethics.cites_law("42 U.S.C. 1397jj(c)(1)")
	ethics.cites_law("45 CFR 155.305")
	ethics.cites_law("Pub. L. 118-42, sec. 3")
	ethics.cites_law("§ 1602 of the state code")
	not ethics.cites_law("because we said so")
}

fairness(ratio) := {"outcome": "eligible", "attributes": {
	"sex": {"ratio": 0.97, "rates": {"f": 0.41, "m": 0.42}, "reference_group": "m", "lowest_group": "f"},
	"race_ethnicity": {"ratio": ratio, "reference_group": "a", "lowest_group": "b", "rates": {"a": 0.5, "b": 0.5 * ratio}},
}}

test_four_fifths_breach_is_a_finding if {
	findings := ethics.deny with input as {
		"protocol": protocol({"income": {"type": "number"}}),
		"fields_read": {"eligible": ["income"]},
		"fairness": fairness(0.79),
	}
	paths(findings) == {"fairness.attributes.race_ethnicity"}
	some f in findings
	contains(f.message, "four-fifths")
}

test_ratio_at_four_fifths_passes if {
	count(ethics.deny) == 0 with input as {
		"protocol": protocol({"income": {"type": "number"}}),
		"fields_read": {"eligible": ["income"]},
		"fairness": fairness(0.8),
	}
}

test_missing_or_null_fairness_is_not_a_finding if {
	count(ethics.deny) == 0 with input as {"protocol": protocol({}), "fields_read": {}, "fairness": null}
	count(ethics.deny) == 0 with input as {"protocol": protocol({}), "fields_read": {}}
}

test_listed_attributes_are_in_normalized_form if {
	every term in data.compliance.ethics.protected_attributes {
		names.normalize(term) == term
	}
}
