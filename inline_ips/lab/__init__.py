"""The lab: synthetic traffic now; namespaces and live attack tooling come with the inline mode."""
