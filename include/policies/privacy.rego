# Privacy rule set: direct identifiers must not reach a policy bundle without a legal basis.
#
# A direct identifier (SSN, name, address, phone, e-mail, date of birth, passport, …) among the
# protocol's declared inputs, or among the keys of its test fixtures, is a finding unless that
# input declares `lawful_purpose`. A fixture value that looks like real personal data (an e-mail
# address, an SSN, a phone number) is a finding whatever the field is called, because test data is
# packed into the bundle and copied to every environment; reserved example values
# (user@example.org, 000-xx-xxxx, 555-01xx) are synthetic and allowed.
#
# The identifier lists and patterns live in data.json (data.compliance.privacy) so they can be
# edited without touching this file. Input: see src/hms/compliance/input.py.
package privacy

import data.compliance.names

cfg := data.compliance.privacy

terms := names.term_set(cfg.identifiers)

compact_terms := names.compact_set(cfg.identifiers)

exact_terms := names.term_set(cfg.exact_identifiers)

identifier(field) if names.matches(field, terms, compact_terms)

identifier(field) if names.normalize(field) in exact_terms

lawful(field) if {
	purpose := input.protocol.inputs[field].lawful_purpose
	is_string(purpose)
	trim_space(purpose) != ""
}

# Every field name the protocol uses: declared inputs and fixture keys.
field_names := {field | some field, _ in input.protocol.inputs} | {field |
	some case in input.protocol.tests
	some field, _ in case.input
}

# Collected without a stated legal basis: the one condition all key-based findings share.
# A set (computed once per query), not a function, so each name is classified once.
unlawful contains field if {
	some field in field_names
	identifier(field)
	not lawful(field)
}

deny contains finding if {
	some field, _ in input.protocol.inputs
	field in unlawful
	finding := {
		"rule_set": "privacy",
		"path": sprintf("inputs.%s", [field]),
		"message": sprintf("input %q is a direct identifier; declare its lawful_purpose (legal basis) or remove it", [field]),
	}
}

deny contains finding if {
	some i, case in input.protocol.tests
	some field, _ in case.input
	field in unlawful
	finding := {
		"rule_set": "privacy",
		"path": sprintf("tests[%d].input.%s", [i, field]),
		"message": sprintf("test %q carries direct identifier %q in its fixture without a lawful_purpose", [case.name, field]),
	}
}

deny contains finding if {
	some i, case in input.protocol.tests
	some field, value in case.input
	not field in unlawful
	is_string(value)
	some kind, pattern in cfg.value_patterns
	regex.match(pattern, value)
	not synthetic(value)
	finding := {
		"rule_set": "privacy",
		"path": sprintf("tests[%d].input.%s", [i, field]),
		"message": sprintf("test %q fixture value of %q looks like %s; use a reserved example value", [case.name, field, kind]),
	}
}

synthetic(value) if {
	some pattern in cfg.synthetic_values
	regex.match(pattern, value)
}
