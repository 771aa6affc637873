"""datagen/houses"""
