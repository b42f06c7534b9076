"""udcshield.store"""
