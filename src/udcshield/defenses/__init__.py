"""udcshield.defenses"""
