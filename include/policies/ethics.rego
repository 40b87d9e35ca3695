# Ethics rule set: no eligibility or amount rule may decide on a protected characteristic without a
# legal authority the legal role approves, and the simulated outcome must not breach the
# four-fifths rule.
#
# Protected inputs are those declared `data_class: protected` (with their protected_characteristic),
# and, as a second line, those that evidently are whatever they are declared: by name (hisp, gndr,
# relig_code, yob, …), by description ("Applicant race") or by an enum of protected categories
# (white/black/asian, male/female, …). Findings (deny):
# - an input that evidently is a protected characteristic but is declared otherwise;
# - a protected input read by an output rule (eligibility, amounts: input.protocol.outputs, directly
#   or through the rules they use, input.fields_read) without an `exemption`;
# - an exemption whose authority cites no law (the form of metadata.authority: "42 U.S.C. 1397jj").
# An exemption that cites law does not silence the reading: it becomes a warning that names the
# legal role, which the effective approval policy then requires (src/hms/declarations.py).
# Warnings (warn, for review): a lookup table keyed by a location code (zip5, county_code, tract):
# a location can stand in for race or national origin.
# Fairness (input.fairness, from the simulation): a selection-rate ratio below four fifths is a finding.
#
# Free-text `justification` is refused at pack and read by nothing here. Lists: data.json.
package ethics

import data.compliance.names

cfg := data.compliance.ethics

characteristics := object.keys(cfg.protected_attributes)

char_patterns := {c: names.words_pattern(terms) | some c, terms in cfg.protected_attributes}

# protected(field) for a bare name: kept for the tests and for callers that only have a name.
protected(field) if {
	some c in characteristics
	names.matches(field, char_patterns[c])
}

# Each input's normalized name, description and enum values, computed once per query.
normal_name[field] := names.normalize(field) if some field, _ in input.protocol.inputs

normal_description[field] := names.normalize(spec.description) if {
	some field, spec in input.protocol.inputs
	is_string(spec.description)
}

normal_enum[field] := {names.normalize(v) | some v in spec.enum; is_string(v)} if {
	some field, spec in input.protocol.inputs
	is_array(spec.enum)
}

# evidence contains [field, characteristic, how it was recognised]
evidence contains [field, c, "its name"] if {
	some field, normal in normal_name
	some c in characteristics
	regex.match(char_patterns[c], normal)
}

evidence contains [field, c, sprintf("its description (%q)", [concat(", ", sort(terms))])] if {
	some field, text in normal_description
	some c in characteristics
	terms := names.found(char_patterns[c], text)
	count(terms) > 0
}

evidence contains [field, c, sprintf("its enum (%s)", [concat(", ", sort(hits))])] if {
	some field, values in normal_enum
	some c, category in cfg.enum_categories
	hits := {v | some v in values; v in category}
	count(hits) >= cfg.enum_min_matches
}

declared_protected(spec) if spec.data_class == "protected"

# characteristic[field]: the declared one, else the first evident one (sorted, so it is stable).
characteristic[field] := spec.protected_characteristic if {
	some field, spec in input.protocol.inputs
	declared_protected(spec)
}

characteristic[field] := min({c | some [f, c, _] in evidence; f == field}) if {
	some field, spec in input.protocol.inputs
	not declared_protected(spec)
	field in {f | some [f, _, _] in evidence}
}

deny contains finding if {
	some field, spec in input.protocol.inputs
	not declared_protected(spec)
	c := characteristic[field]
	whys := sort({why | some [f, cc, why] in evidence; f == field; cc == c})
	finding := {
		"rule_set": "ethics",
		"path": sprintf("inputs.%s.data_class", [field]),
		"message": sprintf(
			"input %q is a protected characteristic (%s, from %s) but is declared %q; declare data_class: protected, protected_characteristic: %s",
			[field, c, concat(", ", whys), names.declared_class(spec), c],
		),
	}
}

# Output rules decide (eligibility, amounts); fields_read is transitive through the rules they use.
decision_rules := {r | some r in object.get(input.protocol, "outputs", [])} | {r |
	r := object.get(input.protocol, ["budget", "amount"], "amount")
	r in object.keys(object.get(input, "fields_read", {}))
}

readers(field) := sort([rule | some rule in decision_rules; field in input.fields_read[rule]])

read_by_decision(field) if count(readers(field)) > 0

cites_law(text) if regex.match(cfg.citation_pattern, text)

exemption(field) := e if {
	e := input.protocol.inputs[field].exemption
	is_object(e)
}

deny contains finding if {
	some field, c in characteristic
	read_by_decision(field)
	not exemption(field)
	finding := {
		"rule_set": "ethics",
		"path": sprintf("inputs.%s", [field]),
		"message": sprintf(
			"protected characteristic %q (%s) is read by rule(s) %s; declare an exemption {authority: <legal citation>, reason} that the %s role approves, or stop reading it",
			[field, c, concat(", ", readers(field)), cfg.exemption_role],
		),
	}
}

deny contains finding if {
	some field, _ in characteristic
	e := exemption(field)
	not cites_law(object.get(e, "authority", ""))
	finding := {
		"rule_set": "ethics",
		"path": sprintf("inputs.%s.exemption.authority", [field]),
		"message": sprintf("exemption for protected input %q cites no law: %q", [field, object.get(e, "authority", "")]),
	}
}

warn contains finding if {
	some field, c in characteristic
	read_by_decision(field)
	e := exemption(field)
	cites_law(object.get(e, "authority", ""))
	finding := {
		"rule_set": "ethics",
		"path": sprintf("inputs.%s.exemption", [field]),
		"message": sprintf(
			"protected characteristic %q (%s) is read by rule(s) %s under exemption %q: the %s role must approve",
			[field, c, concat(", ", readers(field)), e.authority, cfg.exemption_role],
		),
		"requires_role": cfg.exemption_role,
	}
}

location_pattern := names.words_pattern(cfg.location_codes)

location_code(field) if names.matches(field, location_pattern)

warn contains finding if {
	some lookup in object.get(input, "lookups", [])
	some key in lookup.keys
	location_code(key)
	finding := {
		"rule_set": "ethics",
		"path": sprintf("parameters.%s", [lookup.table]),
		"message": sprintf(
			"lookup table %q is keyed by location code %q (rule %s): a location can stand in for race or national origin; review it as a possible proxy",
			[lookup.table, key, lookup.rule],
		),
	}
}

deny contains finding if {
	some attribute, figures in object.get(input, ["fairness", "attributes"], {})
	is_number(figures.ratio)
	figures.ratio < cfg.four_fifths_threshold
	finding := {
		"rule_set": "ethics",
		"path": sprintf("fairness.attributes.%s", [attribute]),
		"message": sprintf(
			"four-fifths rule breached for %s: selection-rate ratio %.3f < %.2f (lowest group %v, reference group %v)",
			[
				attribute, figures.ratio, cfg.four_fifths_threshold,
				object.get(figures, "lowest_group", "?"), object.get(figures, "reference_group", "?"),
			],
		),
	}
}
