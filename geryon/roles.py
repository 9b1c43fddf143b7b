"""Roles (certificate principals after the identity) and the rules for identities.

No dependencies: the registry core, the CA and the SSH adapter all use it.
"""

ROLES = ("admin", "submit", "worker", "cpu", "monitor")

# Identities are printable ASCII without blanks, quotes or '/': they are SSH user names,
# registry owners and words on a terminal, so nothing in them may look like something
# else (U+200B would make 'op\u200bs' print as 'ops').
IDENTITY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                           "0123456789._-@+")
IDENTITY_MAX = 64
IDENTITY_RULE = ("letters, digits and . _ - @ + (ASCII only, at most "
                 f"{IDENTITY_MAX} characters, not starting with '-' or '.')")


def identity_problem(name: str) -> str | None:
    """Why name cannot be an identity, or None when it can."""
    if not name:
        return "it is empty"
    if len(name) > IDENTITY_MAX:
        return f"it is {len(name)} characters long; the limit is {IDENTITY_MAX}"
    bad = sorted({c for c in name if c not in IDENTITY_CHARS})
    if bad:
        return "it holds " + ", ".join(ascii(c) for c in bad) + "; identities use " + IDENTITY_RULE
    if name[0] in "-.":
        return f"it starts with {name[0]!r}; identities use " + IDENTITY_RULE
    if name in ROLES:
        return "it is a role name"
    return None
