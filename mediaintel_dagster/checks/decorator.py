"""``partitioned_check``: @asset_check partitioned by arrival window like every stage."""

import warnings

from dagster import PreviewWarning, asset_check

from ..partitions import arrival_partitions


def partitioned_check(**kwargs):
    """A check runs per arrival window, in the same run as its asset, and reads that
    window's rows. Dagster 1.13 marks partitioned checks as a preview and warns once per
    definition; the warning says nothing a user can act on, so it is silenced here."""

    def deco(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PreviewWarning)
            return asset_check(partitions_def=arrival_partitions, **kwargs)(fn)

    return deco
