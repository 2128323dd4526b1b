"""The pytest plugin (entry point ``insidellms``). Lands with the plugin issue."""
