"""Grafana dashboards as code: grafanalib builds them, `llm-dvfs dashboards` writes the JSON and provisioning.

Data flow: `panels` and `layout` are the building blocks, `variables` holds what every dashboard shares (datasource,
template variables, load-test annotations), one module per dashboard composes them, `generate` turns the set into
files, `cli` writes or checks those files.
"""
