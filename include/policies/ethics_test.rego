package ethics_test

import data.compliance.names
import data.ethics

decl(type, cls) := {"type": type, "data_class": cls, "purpose": "what the rule needs it for"}

protected_decl(type, c) := object.union(decl(type, "protected"), {"protected_characteristic": c})

exempt(spec, authority) := object.union(spec, {"exemption": {"authority": authority, "reason": "the statute draws the line"}})

protocol(inputs) := {"inputs": inputs, "tests": [], "outputs": ["eligible", "amount"]}

scan(inputs, reads) := {"protocol": protocol(inputs), "fields_read": reads}

paths(findings) := {f.path | some f in findings}

test_rules_reading_only_neutral_fields_are_clean if {
	count(ethics.deny) == 0 with input as scan({"household_income": decl("number", "personal")}, {"eligible": ["household_income"]})
	count(ethics.warn) == 0 with input as scan({"household_income": decl("number", "personal")}, {"eligible": ["household_income"]})
}

# -- declarations first ------------------------------------------------------------------------

test_declared_protected_input_read_by_eligibility_is_denied_naming_the_rules if {
	findings := ethics.deny with input as scan(
		{"race": protected_decl("string", "race"), "income": decl("number", "personal")},
		{"eligible": ["income", "race"], "amount": ["income", "race"], "base": ["income"]},
	)
	paths(findings) == {"inputs.race"}
	some f in findings
	f.rule_set == "ethics"
	contains(f.message, "amount, eligible")
	contains(f.message, "exemption")
}

test_protected_input_read_only_by_a_non_output_rule_is_not_a_decision if {
	count(ethics.deny) == 0 with input as scan({"sex": protected_decl("string", "sex")}, {"stat": ["sex"], "eligible": []})
}

test_a_neutral_name_declared_protected_is_still_protected if {
	findings := ethics.deny with input as scan({"attr_q": protected_decl("string", "religion")}, {"eligible": ["attr_q"]})
	paths(findings) == {"inputs.attr_q"}
}

test_declared_but_unread_protected_input_is_not_an_ethics_finding if {
	count(ethics.deny) == 0 with input as scan(
		{"sex": protected_decl("string", "sex"), "income": decl("number", "personal")},
		{"eligible": ["income"]},
	)
}

test_exemption_citing_law_turns_the_denial_into_a_warning_for_the_legal_role if {
	inp := scan({"age": exempt(protected_decl("integer", "age"), "42 U.S.C. 1397jj(c)(1)")}, {"eligible": ["age"]})
	count(ethics.deny) == 0 with input as inp
	warnings := ethics.warn with input as inp
	paths(warnings) == {"inputs.age.exemption"}
	some w in warnings
	w.requires_role == "legal"
	contains(w.message, "legal role must approve")
}

test_exemption_citing_no_law_is_denied if {
	findings := ethics.deny with input as scan({"age": exempt(protected_decl("integer", "age"), "seemed sensible")}, {"eligible": ["age"]})
	paths(findings) == {"inputs.age.exemption.authority"}
}

test_justification_alone_never_silences if {
	spec := object.union(decl("string", "public"), {"justification": "sec. 1", "lawful_purpose": "x"})
	findings := ethics.deny with input as scan({"race": spec}, {"eligible": ["race"]})
	paths(findings) == {"inputs.race.data_class", "inputs.race"}
}

# -- detection as the second line: declared public to evade -------------------------------------

test_evident_protected_characteristic_declared_public_is_denied_even_unread if {
	findings := ethics.deny with input as scan({"gndr": decl("string", "public")}, {"eligible": []})
	paths(findings) == {"inputs.gndr.data_class"}
	some f in findings
	contains(f.message, "gender")
}

test_abbreviated_names_are_protected if {
	every field in ["hisp", "gndr", "relig_code", "yob", "birth_yr", "ethnicity_code", "dob", "race_cd"] {
		ethics.protected(field)
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
	not ethics.protected("group_size")
}

test_description_reveals_a_protected_characteristic if {
	spec := object.union(decl("string", "public"), {"description": "Applicant race"})
	findings := ethics.deny with input as scan({"grp": spec}, {"eligible": ["grp"]})
	paths(findings) == {"inputs.grp.data_class", "inputs.grp"}
	some f in findings
	contains(f.message, "description")
}

test_enum_of_race_categories_reveals_race if {
	spec := object.union(decl("string", "public"), {"enum": ["White", "Black or African American", "Asian", "other"]})
	findings := ethics.deny with input as scan({"grp": spec}, {"amount": ["grp"]})
	paths(findings) == {"inputs.grp.data_class", "inputs.grp"}
	some f in findings
	contains(f.message, "race")
}

test_one_category_word_in_an_enum_is_not_enough if {
	spec := object.union(decl("string", "personal"), {"enum": ["single", "couple", "family"]})
	count(ethics.deny) == 0 with input as scan({"household_type": spec}, {"eligible": ["household_type"]})
}

# -- proxies: a lookup keyed by a location code ------------------------------------------------

test_lookup_keyed_by_a_location_code_is_a_proxy_warning if {
	inp := object.union(
		scan({"zip5": decl("string", "personal")}, {"amount": ["zip5"]}),
		{"lookups": [{"rule": "amount", "table": "zip_rate", "keys": ["zip5"]}]},
	)
	count(ethics.deny) == 0 with input as inp
	warnings := ethics.warn with input as inp
	paths(warnings) == {"parameters.zip_rate"}
	some w in warnings
	contains(w.message, "proxy")
}

test_lookup_keyed_by_household_size_is_no_proxy if {
	inp := object.union(
		scan({"household_size": decl("integer", "personal")}, {"amount": ["household_size"]}),
		{"lookups": [{"rule": "amount", "table": "fpl", "keys": ["household_size"]}]},
	)
	count(ethics.warn) == 0 with input as inp
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
	findings := ethics.deny with input as object.union(
		scan({"income": decl("number", "personal")}, {"eligible": ["income"]}),
		{"fairness": fairness(0.79)},
	)
	paths(findings) == {"fairness.attributes.race_ethnicity"}
	some f in findings
	contains(f.message, "four-fifths")
}

test_ratio_at_four_fifths_passes if {
	count(ethics.deny) == 0 with input as object.union(
		scan({"income": decl("number", "personal")}, {"eligible": ["income"]}),
		{"fairness": fairness(0.8)},
	)
}

test_missing_or_null_fairness_is_not_a_finding if {
	count(ethics.deny) == 0 with input as {"protocol": protocol({}), "fields_read": {}, "fairness": null}
	count(ethics.deny) == 0 with input as {"protocol": protocol({}), "fields_read": {}}
}

test_listed_terms_are_in_normalized_form if {
	every _, terms in object.union(data.compliance.ethics.protected_attributes, data.compliance.ethics.enum_categories) {
		every term in terms {
			names.normalize(term) == term
		}
	}
	every term in data.compliance.ethics.location_codes {
		names.normalize(term) == term
	}
}
