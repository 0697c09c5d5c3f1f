"""Throwaway local back-ends (servers on 127.0.0.1, test certificates) for tests."""
