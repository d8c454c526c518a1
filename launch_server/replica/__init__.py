"""Everything that runs inside a Ray worker: the bundle runtime, the Serve deployment, where user
code runs (the predict pool or the replica loop) and streams of its values, the replica's own gRPC
listener and task channel, and batch chunk work. It imports nothing from the server's api/, store/
or task_queue/ packages (tests/unit/test_import_graph.py keeps it so)."""
