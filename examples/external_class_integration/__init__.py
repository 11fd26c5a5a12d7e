"""The README's registry example: Ether decorators applied from YAML to classes
that know nothing of Ether (third_party_module)."""
