"""What runs graphs: the runtime, its run drivers, the effects a node's ctx records, the decisions
people take on interrupts, forks, the queue worker. Nothing here imports the demos or a model."""
