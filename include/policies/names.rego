# Field-name matching shared by the privacy and ethics rule sets.
#
# Names are compared in a normalized form (lower case, runs of other characters -> "_"). A listed
# term matches when it is a run of whole words of the name ("applicant_date_of_birth" holds
# "date_of_birth") or equals the name with the separators removed ("dateOfBirth", "e-mail").
# Whole-word matching keeps "wage" from matching "age". Matching is set membership (the callers
# build their term sets once per query), so a scan stays well under a millisecond per bundle.
package compliance.names

normalize(name) := trim(regex.replace(lower(name), "[^a-z0-9]+", "_"), "_")

compact(name) := replace(normalize(name), "_", "")

# Every run of consecutive words: "a_b_c" -> {"a", "b", "c", "a_b", "b_c", "a_b_c"}.
phrases(name) := {concat("_", array.slice(words, i, j + 1)) |
	words := split(normalize(name), "_")
	some i in numbers.range(0, count(words) - 1)
	some j in numbers.range(i, count(words) - 1)
}

# The two sets matches() takes, from a list of terms already in normalized form (lower_snake_case,
# as data.json keeps them; a Rego test checks that). No regex here: this runs once per query.
term_set(terms) := {t | some t in terms}

compact_set(terms) := {replace(t, "_", "") | some t in terms}

matches(name, terms, compact_terms) if count(phrases(name) & terms) > 0

matches(name, terms, compact_terms) if compact(name) in compact_terms

# Descriptions are prose: a listed term matches when its words appear in order as whole words
# ("Social security number" holds "social_security_number"; "average" does not hold "age").
spaced(text) := concat("", [" ", replace(normalize(text), "_", " "), " "])

mentions(text, term) if contains(spaced(text), spaced(term))

# The data classes in increasing order of care; a declaration below what detection finds is a finding.
class_rank := {"public": 0, "personal": 1, "sensitive": 2, "protected": 3}

declared_class(spec) := object.get(spec, "data_class", "public")

declared_rank(spec) := class_rank[declared_class(spec)]
