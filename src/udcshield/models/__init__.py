"""udcshield.models"""
