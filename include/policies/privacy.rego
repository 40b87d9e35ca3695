# Privacy rule set: the inputs' declarations first, name- and content-based detection second.
#
# Every input declares its data_class (public, personal, sensitive, protected) and purpose; the
# loader refuses one without (src/hms/declarations.py), so a declared personal or sensitive input
# with its purpose is the reviewable statement of why it is collected. Findings:
#
# - A declaration below what the input evidently is: its name (abbreviations included: soc_sec_num,
#   emailaddr, applicant_nm, addr_line1, birth_yr, yob) or its description ("Social security
#   number") says a direct identifier, and it is declared public (or personal for an SSN, a TIN, a
#   passport, …). Declaring `public` to evade the scan is exactly what this second line catches.
# - A test fixture value shaped like real personal data (an SSN with or without dashes, a TIN, an
#   e-mail address, a phone number, a person's name, a street address), whatever the field is
#   called or declared: test data is packed into the bundle and copied to every environment.
#   Reserved example values (user@example.org, 000-xx-xxxx, 555-01xx) are synthetic and allowed.
#
# Free text never silences anything: there is no field this file reads that a protocol could set
# to make a finding go away (`lawful_purpose` / `justification` are refused at pack).
#
# Lists and patterns live in data.json (data.compliance.privacy). Input: src/hms/compliance/input.py.
package privacy

import data.compliance.names

cfg := data.compliance.privacy

classes := ["sensitive", "personal"]

name_patterns := {cls: names.words_pattern(cfg.identifiers[cls]) | some cls in classes}

description_patterns := {cls: names.words_pattern(cfg.description_terms[cls]) | some cls in classes}

# identifier(name): a bare name is a direct identifier of some class (for tests and name-only callers).
identifier(field) if {
	some cls in classes
	names.matches(field, name_patterns[cls])
}

identifier(field) if {
	some cls in classes
	names.normalize(field) in object.get(cfg.exact_identifiers, cls, [])
}

# Each input's normalized name and description, computed once per query.
normal_name[field] := names.normalize(field) if some field, _ in input.protocol.inputs

normal_description[field] := names.normalize(spec.description) if {
	some field, spec in input.protocol.inputs
	is_string(spec.description)
}

# evidence contains [field, the class it needs at least, how it was recognised]; the strongest
# class found decides (needed_rank).
evidence contains [field, cls, "its name"] if {
	some field, normal in normal_name
	some cls in classes
	regex.match(name_patterns[cls], normal)
}

evidence contains [field, cls, "its name"] if {
	some field, normal in normal_name
	some cls in classes
	normal in object.get(cfg.exact_identifiers, cls, [])
}

evidence contains [field, cls, sprintf("its description (%q)", [concat(", ", sort(terms))])] if {
	some field, text in normal_description
	some cls in classes
	terms := names.found(description_patterns[cls], text)
	count(terms) > 0
}

needed_rank(field) := max({names.class_rank[cls] | some [f, cls, _] in evidence; f == field})

needed_class(field) := cls if {
	some cls in classes
	names.class_rank[cls] == needed_rank(field)
}

# Inputs that look like identifiers (any class): their integer fixture values are read as text too.
identifier_like := {field | some [field, _, _] in evidence}

deny contains finding if {
	some field, spec in input.protocol.inputs
	field in identifier_like
	names.declared_rank(spec) < needed_rank(field)
	cls := needed_class(field)
	whys := sort({why | some [f, c, why] in evidence; f == field; c == cls})
	finding := {
		"rule_set": "privacy",
		"path": sprintf("inputs.%s.data_class", [field]),
		"message": sprintf(
			"input %q is a direct identifier (from %s) but is declared %q; declare data_class: %s (or higher) with its purpose, or remove it",
			[field, concat(", ", whys), names.declared_class(spec), cls],
		),
	}
}

# Fixture values: strings as they are; numbers of identifier-like inputs as their digits (an SSN typed
# without quotes is still an SSN).
fixture_text(field, value) := value if is_string(value)

fixture_text(field, value) := format_int(value, 10) if {
	is_number(value)
	field in identifier_like
}

given_names := concat("|", cfg.given_names)

name_pattern := sprintf(`(?i)^(%s)(\s+[a-z]\.?)?\s+[a-z][a-z'-]+$`, [given_names])

looks_like(text) := {kind | some kind, pattern in cfg.value_patterns; regex.match(pattern, text)} | {
	"a person's name" |
		regex.match(name_pattern, text)
}

deny contains finding if {
	some i, case in input.protocol.tests
	some field, value in case.input
	text := fixture_text(field, value)
	not synthetic(text)
	some kind in looks_like(text)
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

# Warnings (for review): a personal input the decision log keeps in clear (log: keep, with its
# log_purpose; hms.decision_masking). Replay of a rule change on real decisions needs such values, so
# it may be right; it is the reviewers' decision, never a default.
warn contains finding if {
	some field, spec in input.protocol.inputs
	spec.data_class == "personal"
	object.get(spec, "log", "") == "keep"
	finding := {
		"rule_set": "privacy",
		"path": sprintf("inputs.%s.log", [field]),
		"message": sprintf(
			"personal input %q is kept in clear in the decision log (log: keep) for: %q; approve only if replay needs it",
			[field, object.get(spec, "log_purpose", "")],
		),
	}
}
