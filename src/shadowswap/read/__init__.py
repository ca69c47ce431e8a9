"""The read path: route each search to the backend the policy names, shadow a sample, fall back.

    router.py    `Router`: one search = one plan from `shadowswap.policy`, the serving store's
                 answer within the read deadline, a fallback when the other store is in step,
                 and a sampled shadow read handed to `shadowswap.shadow`
    bulkhead.py  bounded threads that give a blocking store call a deadline

May import: `shadowswap.shadow`, `shadowswap.stores`, `shadowswap.policy`, settings and the
foundation. Never imports the control plane (`shadowswap.rollout`) or anything above it.
"""

from shadowswap.read.router import RoutedResult, Router, RouterStats, new_trace_id

__all__ = ["RoutedResult", "Router", "RouterStats", "new_trace_id"]
