"""Online scoring at a party node: model versions, feature stores, the scoring service."""
