"""udcshield.data"""
