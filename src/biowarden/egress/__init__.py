"""Export controls: caps per export, rolling quotas, cumulative participant x field coverage.

``limits`` and ``coverage`` are core (plain dataclasses, pyroaring bitmaps); ``service`` applies them over
the store, exactly under concurrency: the scopes an export touches are locked before anything is read.
"""
