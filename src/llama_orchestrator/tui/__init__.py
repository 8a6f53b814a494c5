"""`llama-orch dashboard`: a live Textual view of the fleet that you can act from.

Importing this package imports nothing heavy; `tui.app` pulls in Textual. The dashboard reads the
world only through the control API (`daemon.client.DaemonClient`, or anything with the same
methods: see `tui.source.DashboardClient`).
"""
