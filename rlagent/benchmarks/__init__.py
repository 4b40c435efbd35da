"""Benchmarks behind ``rlagent bench``: each module measures one part and returns a dict."""
