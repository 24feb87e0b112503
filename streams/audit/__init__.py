"""The deep-audit shell: the hash-chained store (``store``), its verifier (``verify``), legal
holds and purges (``retention``), and where deep audits run (``worker``)."""
