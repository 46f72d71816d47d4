"""Hugging Face: exporting a BERT student (:mod:`~searchkd.hf.export`), loading one back and
registering searchkd's classes (:mod:`~searchkd.hf.load`), and the modelling file an export ships
(:mod:`~searchkd.hf.modeling`, which imports only torch and transformers). Import the module you need;
this package imports none of them, so that reading a folder never imports the exporter.
"""
