"""Ready-made scriptlets that the bundled example recipes use."""
