"""Find the objects whose configuration HAProxy's own check refuses.

Validation follows Kubernetes' rules and HAProxy's grammar, so a value HAProxy
refuses should never get this far; if one does (an operator's template, a rule we
missed), one object must not block every later change.  When the full
configuration fails its check, the objects are bisected: each culprit is found
with about log2(N) checks, held back with the checker's reason, and the rest is
served.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

MAX_CULPRITS = 8  # more than this is not a bad object but a bad configuration


async def find_culprits(
    sources: Sequence[str], passes: Callable[[set[str]], Awaitable[bool]]
) -> list[str] | None:
    """The fewest of ``sources`` to hold back so that ``passes(held back)`` is true.

    ``passes`` checks the configuration without the sources it is given.  None when
    the configuration fails even without any source (the fault is not in an object)
    or when more than :data:`MAX_CULPRITS` objects would have to go.
    """
    remaining = list(sources)
    culprits: list[str] = []
    if not await passes(set(remaining)):
        return None
    while not await passes(set(culprits)):
        if len(culprits) == MAX_CULPRITS or not remaining:
            return None
        # The first k remaining sources, with the culprits held back: passes for k=0
        # (everything held back, checked above), fails for k=len.  The k where it
        # starts failing names a culprit.
        low, high = 0, len(remaining)
        while high - low > 1:
            middle = (low + high) // 2
            if await passes({*culprits, *remaining[middle:]}):
                low = middle
            else:
                high = middle
        culprits.append(remaining.pop(high - 1))
    return culprits
