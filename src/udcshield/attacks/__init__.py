"""udcshield.attacks"""
