"""Test harness code (throwaway clusters) shared by the test tiers."""
