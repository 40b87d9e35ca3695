# Field-name matching shared by the privacy and ethics rule sets.
#
# Names are compared in a normalized form (lower case, runs of other characters -> "_"). A listed
# term matches when it is a run of whole words of the name ("applicant_date_of_birth" holds
# "date_of_birth"), also with its separators left out ("dateofbirth", "emailaddr" for
# "email_addr", "socsecnum"). Whole-word matching keeps "wage" from matching "age".
#
# Each term list becomes one regular expression per query (words_pattern: three built-in calls;
# OPA caches the compiled expression across queries), so a scan costs a few regex matches per input
# instead of building term sets in Rego for every query. Terms are lower_snake_case (a Rego test
# checks), which also makes them safe inside the expression.
package compliance.names

normalize(name) := trim(regex.replace(lower(name), "[^a-z0-9]+", "_"), "_")

words_pattern(terms) := sprintf("(^|_)(%s)(_|$)", [replace(concat("|", terms), "_", "_?")])

matches(name, pattern) if regex.match(pattern, normalize(name))

# The listed terms a normalized text holds as whole words (descriptions are prose: "Social security
# number" holds "social_security_number"; "Average monthly bill" holds no "age").
found(pattern, normal_text) := {m[2] | some m in regex.find_all_string_submatch_n(pattern, normal_text, -1)}

# The data classes in increasing order of care; a declaration below what detection finds is a finding.
class_rank := {"public": 0, "personal": 1, "sensitive": 2, "protected": 3}

declared_class(spec) := object.get(spec, "data_class", "public")

declared_rank(spec) := class_rank[declared_class(spec)]
