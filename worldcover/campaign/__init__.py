"""Campaigns: what to produce (a plan), what it costs (an estimate), and the step functions both engines call."""

from worldcover.campaign.plan import CampaignPlan, check_name

__all__ = ["CampaignPlan", "check_name"]
