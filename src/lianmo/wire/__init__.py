"""The protocols' wire vocabulary: every protocol step declared once, and its payload checks.

``steps`` is the registry (tag, payload type, who sends to whom, the one check a receiver
runs); ``step`` defines what a step is; ``convert`` turns crypto objects into payload
messages and back with the checks every receiver needs.
"""
