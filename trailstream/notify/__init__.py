"""Telling people: alert rules and delivery, mail, saved searches and scheduled reports."""
