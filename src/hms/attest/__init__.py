"""Signed evidence: every review, recorded check and deployment as an in-toto Statement in a DSSE envelope.

``statements`` builds the Statements (subject: the bundle's sha256; a predicate type per kind),
``keys`` holds who may sign (a signer whose private key lives outside the registry; the trusted public
keys, also outside it), ``envelopes`` signs and verifies. The database keeps the envelopes as evidence;
it is not the authority: a row whose envelope does not verify, or does not say what the row says, never
counts (docs/signed-evidence.md).
"""
