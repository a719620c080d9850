"""Agents: the think/act loop as a graph (`agent`) and the model providers it talks to (`models`)."""
