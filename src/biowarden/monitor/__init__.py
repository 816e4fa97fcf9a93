"""Monitoring for suspicious activity: signals from ledger events, layered detectors, incidents,
an escalation ladder and automatic suspension.

``activity`` turns ledger events into activities; ``detectors`` keeps per-actor state and raises alerts
(hard rules are checked before an export and fail closed); ``incidents`` merges alerts and climbs the
ladder; ``simulate`` drives months of ordinary traffic and attack scenarios through the same path.
"""
