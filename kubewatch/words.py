"""English plurals of kinds, one rule for every place a kind is counted or a resource
name is guessed from a kind (the rule Kubernetes' code generators use)."""

from __future__ import annotations

__all__ = ["plural"]


def plural(word: str) -> str:
    """``Pod`` → ``Pods``, ``Ingress`` → ``Ingresses``, ``Fizz`` → ``Fizzes``,
    ``NetworkPolicy`` → ``NetworkPolicies``; the case of ``word`` is kept."""
    if word.lower().endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if len(word) > 1 and word.endswith(("y", "Y")) and word[-2].lower() not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"
