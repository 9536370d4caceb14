"""The course side.

What ``make`` runs (provisioning, the lecture build, the course site, homework). It may import
``tlcourse.lesson``; a lesson never imports it.
"""
