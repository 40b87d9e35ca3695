package privacy_test

import data.compliance.names
import data.privacy

decl(type, cls) := {"type": type, "data_class": cls, "purpose": "what the rule needs it for"}

base := {"protocol": {
	"inputs": {"household_size": decl("integer", "personal"), "household_income": decl("number", "personal")},
	"tests": [{"name": "t0", "input": {"household_size": 2, "household_income": 100}}],
}}

with_inputs(extra) := {"protocol": {
	"inputs": object.union(base.protocol.inputs, extra),
	"tests": base.protocol.tests,
}}

with_fixture(inputs, values) := {"protocol": {
	"inputs": inputs,
	"tests": [{"name": "a", "input": values}],
}}

paths(findings) := {f.path | some f in findings}

test_clean_protocol_has_no_findings if {
	count(privacy.deny) == 0 with input as base
}

# -- declarations first ------------------------------------------------------------------------

test_ssn_declared_sensitive_is_no_finding if {
	count(privacy.deny) == 0 with input as with_inputs({"ssn": decl("string", "sensitive")})
}

test_ssn_declared_public_is_a_finding_at_its_data_class if {
	findings := privacy.deny with input as with_inputs({"ssn": decl("string", "public")})
	paths(findings) == {"inputs.ssn.data_class"}
	some f in findings
	f.rule_set == "privacy"
	contains(f.message, "declared \"public\"")
	contains(f.message, "sensitive")
}

test_ssn_declared_personal_is_still_too_low if {
	findings := privacy.deny with input as with_inputs({"ssn": decl("string", "personal")})
	paths(findings) == {"inputs.ssn.data_class"}
}

test_email_declared_personal_is_enough if {
	count(privacy.deny) == 0 with input as with_inputs({"contact_email": decl("string", "personal")})
}

test_protected_ranks_above_sensitive if {
	count(privacy.deny) == 0 with input as with_inputs({"date_of_birth": decl("string", "protected")})
}

test_justification_or_lawful_purpose_alone_never_silences if {
	spec := object.union(decl("string", "public"), {
		"justification": "sec. 1",
		"lawful_purpose": "x",
	})
	findings := privacy.deny with input as with_inputs({"ssn": spec})
	paths(findings) == {"inputs.ssn.data_class"}
}

# -- detection as the second line: names, abbreviations, descriptions --------------------------

test_names_are_normalized_and_matched_as_whole_words if {
	findings := privacy.deny with input as with_inputs({
		"applicant_date_of_birth": decl("string", "public"),
		"home_address": decl("string", "public"),
		"contact_email": decl("string", "public"),
		"first_name": decl("string", "public"),
		"name": decl("string", "public"),
	})
	paths(findings) == {
		"inputs.applicant_date_of_birth.data_class", "inputs.home_address.data_class",
		"inputs.contact_email.data_class", "inputs.first_name.data_class", "inputs.name.data_class",
	}
}

test_abbreviations_are_identifiers if {
	every field in ["soc_sec_num", "tax_id", "emailaddr", "applicant_nm", "addr_line1", "birth_yr", "yob", "ssn_last4", "dob"] {
		privacy.identifier(field)
	}
}

test_abbreviated_identifiers_declared_public_are_findings if {
	findings := privacy.deny with input as with_inputs({
		"soc_sec_num": decl("string", "public"),
		"tax_id": decl("string", "public"),
		"emailaddr": decl("string", "public"),
		"applicant_nm": decl("string", "public"),
		"addr_line1": decl("string", "public"),
		"birth_yr": decl("integer", "public"),
		"yob": decl("integer", "public"),
	})
	paths(findings) == {
		"inputs.soc_sec_num.data_class", "inputs.tax_id.data_class", "inputs.emailaddr.data_class",
		"inputs.applicant_nm.data_class", "inputs.addr_line1.data_class", "inputs.birth_yr.data_class",
		"inputs.yob.data_class",
	}
}

test_description_reveals_an_identifier_behind_a_neutral_name if {
	spec := object.union(decl("string", "public"), {"description": "Social security number"})
	findings := privacy.deny with input as with_inputs({"ref_a": spec})
	paths(findings) == {"inputs.ref_a.data_class"}
	some f in findings
	contains(f.message, "description")
	contains(f.message, "sensitive")
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

test_ordinary_description_is_no_finding if {
	spec := object.union(decl("number", "personal"), {"description": "Average monthly energy bill"})
	count(privacy.deny) == 0 with input as with_inputs({"monthly_energy_cost": spec})
}

# -- fixtures: PII-shaped values whatever the field is called or declared ----------------------

test_real_looking_email_in_fixture_is_a_finding if {
	findings := privacy.deny with input as with_fixture({"note": decl("string", "public")}, {"note": "jane.doe@gmail.com"})
	paths(findings) == {"tests[0].input.note"}
	some f in findings
	contains(f.message, "email")
}

test_ssn_shaped_values_with_and_without_dashes_are_findings if {
	findings := privacy.deny with input as {"protocol": {
		"inputs": {"ref": decl("string", "sensitive")},
		"tests": [{"name": "a", "input": {"ref": "123-45-6789"}}, {"name": "b", "input": {"ref": "123456789"}}],
	}}
	paths(findings) == {"tests[0].input.ref", "tests[1].input.ref"}
}

test_ssn_typed_as_a_number_in_an_identifier_field_is_a_finding if {
	findings := privacy.deny with input as with_fixture({"ssn": decl("integer", "sensitive")}, {"ssn": 123456789})
	paths(findings) == {"tests[0].input.ssn"}
}

test_nine_digit_number_in_an_ordinary_field_is_no_finding if {
	count(privacy.deny) == 0 with input as with_fixture(
		{"household_income": decl("number", "personal")},
		{"household_income": 123456789},
	)
}

test_tin_shaped_value_is_a_finding if {
	findings := privacy.deny with input as with_fixture({"ref": decl("string", "public")}, {"ref": "12-3456789"})
	some f in findings
	f.path == "tests[0].input.ref"
	contains(f.message, "taxpayer identification")
}

test_person_name_in_fixture_is_a_finding if {
	findings := privacy.deny with input as with_fixture({"who": decl("string", "public")}, {"who": "Jane Doe"})
	paths(findings) == {"tests[0].input.who"}
	some f in findings
	contains(f.message, "person's name")
}

test_place_names_are_not_person_names if {
	count(privacy.deny) == 0 with input as with_fixture({"county": decl("string", "public")}, {"county": "Los Angeles"})
}

test_street_address_in_fixture_is_a_finding if {
	findings := privacy.deny with input as with_fixture({"where": decl("string", "public")}, {"where": "742 Evergreen Terrace"})
	some f in findings
	f.path == "tests[0].input.where"
	contains(f.message, "street address")
}

test_reserved_example_values_are_synthetic if {
	findings := privacy.deny with input as {"protocol": {
		"inputs": {"ref": decl("string", "public")},
		"tests": [
			{"name": "a", "input": {"ref": "someone@example.org"}},
			{"name": "b", "input": {"ref": "clerk@agency.test"}},
			{"name": "c", "input": {"ref": "000-12-3456"}},
			{"name": "d", "input": {"ref": "202-555-0123"}},
			{"name": "e", "input": {"ref": "900123456"}},
			{"name": "f", "input": {"ref": "00-1234567"}},
		],
	}}
	count(findings) == 0
}

test_declared_sensitive_field_with_real_value_is_still_a_leak if {
	findings := privacy.deny with input as with_fixture({"email": decl("string", "personal")}, {"email": "jane.doe@gmail.com"})
	paths(findings) == {"tests[0].input.email"}
}

test_listed_terms_are_in_normalized_form if {
	cfg := data.compliance.privacy
	terms := array.concat(
		array.concat(
			array.concat(cfg.identifiers.sensitive, cfg.identifiers.personal),
			array.concat(cfg.description_terms.sensitive, cfg.description_terms.personal),
		),
		array.concat(cfg.exact_identifiers.personal, cfg.given_names),
	)
	every term in terms {
		names.normalize(term) == term
	}
}

# -- the decision log ---------------------------------------------------------------------------

test_personal_input_kept_in_clear_in_the_decision_log_is_a_warning_naming_its_purpose if {
	kept := object.union(decl("number", "personal"), {"log": "keep", "log_purpose": "replay an income limit change"})
	findings := privacy.warn with input as with_inputs({"household_income": kept})
	paths(findings) == {"inputs.household_income.log"}
	some f in findings
	contains(f.message, "replay an income limit change")
	count(privacy.deny) == 0 with input as with_inputs({"household_income": kept})
}

test_hashed_personal_input_and_kept_public_input_are_no_warning if {
	hashed := object.union(decl("number", "personal"), {"log": "hash"})
	public := object.union(decl("boolean", "public"), {"log": "keep"})
	count(privacy.warn) == 0 with input as with_inputs({"household_income": hashed, "declared": public})
}
