"""Plug-ins for the audit tests, imported by name as a user's ``--plugin module:attr`` is.

``twins``: a verbatim copy of every seed algorithm and component (same code, another name, no presets, so
that the paper's presets are mapped onto it by parameter name), each counting its calls.
``defects_<paper>``: realistic defects planted in copies of the seed algorithms and components; each module
lists its defects in ``DEFECTS`` (plug-in attribute, the quick-profile claims expected to catch it, what is
wrong).
"""
