"""The operator's control plane: phases and their moves, rollback with its journal and smoke
test, the drain and purge steps of a rollback.

    phases.py    goals and `transition` (which move is allowed; a swap needs a fresh
                 reconcile at drift 0, judged by `shadowswap.sync.freshness`)
    moves.py     `PhaseMover`: a move applied to the env file, journaled, and a change of
                 the write plan recorded in the state dir
    rollback.py  the runbook's rollback: drain, switch, purge, smoke test, journal
    journal.py   the append-only NDJSON journal of moves and rollbacks
    smoke.py     the post-rollback smoke test over HTTP
    drain.py     replay of the outbox before a rollback's switch
    purge.py     removal of the target's delta after a rollback

What phase the flags form is read in `shadowswap.settings.phase`; per-request decisions are
`shadowswap.policy`; env-file editing is `shadowswap.settings.envfile`. May import dual write
(the drain), sync, stores, policy, settings and the foundation. The hot path (read router,
dual writer, reconcile) never imports this package.
"""
