"""udcshield.physics"""
