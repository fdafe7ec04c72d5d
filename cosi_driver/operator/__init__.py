"""Companion operator of the COSI driver (kopf): flat credential Secrets, orphan reconciliation,
Events on claims and accesses users must see."""
