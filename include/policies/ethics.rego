# Ethics rule set: no rule may decide on a protected attribute without a legal reason, and the
# simulated outcome must not breach the four-fifths rule.
#
# - A protected attribute (race, ethnicity, religion, sex, national origin, disability, age, …) read
#   by any rule, directly or through the rules it uses (input.fields_read, taken from the rule
#   AST), is a finding unless the input declares a `justification` that cites law (CHIP's
#   "42 U.S.C. 1397jj(c)(1)" for age is the legitimate case). A justification that cites nothing
#   is reported as such.
# - Fairness (input.fairness, from the population simulation): an attribute whose lowest group's
#   selection rate is below four fifths of the reference group's (ratio < 0.8) is a finding.
#
# Lists and the threshold live in data.json (data.compliance.ethics).
package ethics

import data.compliance.names

cfg := data.compliance.ethics

terms := names.term_set(cfg.protected_attributes)

compact_terms := names.compact_set(cfg.protected_attributes)

protected(field) if names.matches(field, terms, compact_terms)

# Every input field some rule reads.
read_fields contains field if {
	some _, fields in input.fields_read
	some field in fields
}

# Protected attributes some rule reads, each classified once per query.
protected_read contains field if {
	some field in read_fields
	protected(field)
}

justification(field) := text if {
	text := input.protocol.inputs[field].justification
	is_string(text)
	trim_space(text) != ""
}

cites_law(text) if regex.match(cfg.citation_pattern, text)

readers(field) := sort([rule | some rule, fields in input.fields_read; field in fields])

deny contains finding if {
	some field in protected_read
	not justification(field)
	finding := {
		"rule_set": "ethics",
		"path": sprintf("inputs.%s", [field]),
		"message": sprintf(
			"protected attribute %q is read by rule(s) %s without a justification citing law",
			[field, concat(", ", readers(field))],
		),
	}
}

deny contains finding if {
	some field in protected_read
	text := justification(field)
	not cites_law(text)
	finding := {
		"rule_set": "ethics",
		"path": sprintf("inputs.%s.justification", [field]),
		"message": sprintf("justification for protected attribute %q cites no law: %q", [field, text]),
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
