"""The registry's mutations, one per module: each holds its input, its success type, its
payload union and its resolver; this class only gathers them, in the schema's order."""

import strawberry

from app.graphql.registry.mutations import (
    delete_model_alias,
    deletions,
    model_tags,
    promote_best_run,
    record_validation,
    register_model_version,
    rename_model,
    rollback_model,
    set_model_alias,
    set_promotion_policy,
    transition_model_version,
    update_model,
    update_model_version,
)


@strawberry.type
class RegistryMutation:
    register_model_version = register_model_version.register_model_version
    transition_model_version = transition_model_version.transition_model_version
    promote_best_run = promote_best_run.promote_best_run
    rollback_model = rollback_model.rollback_model
    set_model_alias = set_model_alias.set_model_alias
    delete_model_alias = delete_model_alias.delete_model_alias
    record_validation = record_validation.record_validation
    set_promotion_policy = set_promotion_policy.set_promotion_policy
    update_model = update_model.update_model
    update_model_version = update_model_version.update_model_version
    set_model_tag = model_tags.set_model_tag
    delete_model_tag = model_tags.delete_model_tag
    set_model_version_tag = model_tags.set_model_version_tag
    delete_model_version_tag = model_tags.delete_model_version_tag
    rename_model = rename_model.rename_model
    delete_model = deletions.delete_model
    delete_model_version = deletions.delete_model_version
