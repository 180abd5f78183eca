"""Tests of the embedded CSMS."""
