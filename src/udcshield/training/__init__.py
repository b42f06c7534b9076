"""udcshield.training"""
