"""udcshield.evaluation"""
