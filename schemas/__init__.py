"""The contracts: every message that crosses a topic, the ceasefire registry, and the topic catalogue."""
