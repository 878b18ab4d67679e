"""Scenarios across modules (hook, sensor, trigger, operators), each told once in every place it reaches."""
