package privacy_test

import data.compliance.names
import data.privacy

base := {"protocol": {
	"inputs": {"household_size": {"type": "integer"}, "household_income": {"type": "number"}},
	"tests": [{"name": "t0", "input": {"household_size": 2, "household_income": 100}}],
}}

with_inputs(extra) := {"protocol": {
	"inputs": object.union(base.protocol.inputs, extra),
	"tests": base.protocol.tests,
}}

paths(findings) := {f.path | some f in findings}

test_clean_protocol_has_no_findings if {
	count(privacy.deny) == 0 with input as base
}

test_ssn_input_is_a_finding_at_its_path if {
	findings := privacy.deny with input as with_inputs({"ssn": {"type": "string"}})
	paths(findings) == {"inputs.ssn"}
	some f in findings
	f.rule_set == "privacy"
	contains(f.message, "ssn")
}

test_names_are_normalized_and_matched_as_whole_words if {
	findings := privacy.deny with input as with_inputs({
		"applicant_date_of_birth": {"type": "string"},
		"home_address": {"type": "string"},
		"contact_email": {"type": "string"},
		"first_name": {"type": "string"},
		"name": {"type": "string"},
	})
	paths(findings) == {
		"inputs.applicant_date_of_birth", "inputs.home_address", "inputs.contact_email",
		"inputs.first_name", "inputs.name",
	}
}

test_compact_spellings_match if {
	privacy.identifier("dateOfBirth")
	privacy.identifier("E-Mail")
	privacy.identifier("PhoneNumber")
}

test_ordinary_fields_do_not_match if {
	not privacy.identifier("county_name")
	not privacy.identifier("household_size")
	not privacy.identifier("mobile_home_owner")
	not privacy.identifier("county_fire_declared")
}

test_lawful_purpose_exempts_the_input if {
	findings := privacy.deny with input as with_inputs({"ssn": {
		"type": "string",
		"lawful_purpose": "26 U.S.C. 6109: taxpayer identification for payment reporting",
	}})
	count(findings) == 0
}

test_blank_lawful_purpose_does_not_exempt if {
	findings := privacy.deny with input as with_inputs({"ssn": {"type": "string", "lawful_purpose": "  "}})
	paths(findings) == {"inputs.ssn"}
}

test_identifier_in_test_fixture_is_a_finding_at_its_fixture_path if {
	findings := privacy.deny with input as {"protocol": {
		"inputs": {"x": {"type": "integer"}},
		"tests": [
			{"name": "a", "input": {"x": 1}},
			{"name": "b", "input": {"x": 2}},
			{"name": "c", "input": {"x": 3, "email": "someone@example.org"}},
		],
	}}
	paths(findings) == {"tests[2].input.email"}
}

test_real_looking_value_in_fixture_is_a_finding if {
	findings := privacy.deny with input as {"protocol": {
		"inputs": {"note": {"type": "string"}},
		"tests": [{"name": "a", "input": {"note": "jane.doe@gmail.com"}}],
	}}
	paths(findings) == {"tests[0].input.note"}
	some f in findings
	contains(f.message, "email")
}

test_ssn_shaped_value_in_fixture_is_a_finding if {
	findings := privacy.deny with input as {"protocol": {
		"inputs": {"ref": {"type": "string"}},
		"tests": [{"name": "a", "input": {"ref": "123-45-6789"}}],
	}}
	paths(findings) == {"tests[0].input.ref"}
}

test_reserved_example_values_are_synthetic if {
	findings := privacy.deny with input as {"protocol": {
		"inputs": {"ref": {"type": "string"}},
		"tests": [
			{"name": "a", "input": {"ref": "someone@example.org"}},
			{"name": "b", "input": {"ref": "clerk@agency.test"}},
			{"name": "c", "input": {"ref": "000-12-3456"}},
			{"name": "d", "input": {"ref": "202-555-0123"}},
		],
	}}
	count(findings) == 0
}

test_lawful_field_with_real_value_in_fixture_is_still_a_leak if {
	findings := privacy.deny with input as {"protocol": {
		"inputs": {"email": {"type": "string", "lawful_purpose": "notices under 42 CFR 435.917"}},
		"tests": [{"name": "a", "input": {"email": "jane.doe@gmail.com"}}],
	}}
	paths(findings) == {"tests[0].input.email"}
}

test_listed_terms_are_in_normalized_form if {
	every term in array.concat(data.compliance.privacy.identifiers, data.compliance.privacy.exact_identifiers) {
		names.normalize(term) == term
	}
}
