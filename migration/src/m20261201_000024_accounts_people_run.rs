use super::m20261123_000001_create_organizations::Organizations;
use super::m20261123_000002_create_users::Users;
use sea_orm_migration::{prelude::*, schema::*};

/// Accounts people run themselves (issue 16): invitations, password resets by email,
/// sign-in failures for throttling, token kinds and lineage, service accounts, and when
/// each person certified their electronic signature.
///
/// The data part ends the admin-held credentials of the old model:
/// - tokens an admin minted for someone else are revoked;
/// - every token of an organization registered by a sponsor is revoked: the only way
///   into such an organization was the sponsor's 7-day hand-over token, so all of its
///   tokens descend from it and the sponsor may hold any of them;
/// - passwords an admin set (temporary ones) are erased.
///
/// Each person concerned is marked with an `access_notice`; the worker emails them how to
/// get their own access (it knows the public URL, a migration does not).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        let token_columns = [
            string_len(ApiTokens::Kind, 16)
                .default("personal")
                .to_owned(),
            big_integer_null(ApiTokens::ParentTokenId).to_owned(),
            boolean(ApiTokens::ReadOnly).default(false).to_owned(),
            string_len_null(ApiTokens::RevokedReason, 64).to_owned(),
        ];
        for column in token_columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(ApiTokens::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ix_api_tokens_parent")
                    .table(ApiTokens::Table)
                    .col(ApiTokens::ParentTokenId)
                    .to_owned(),
            )
            .await?;
        let user_columns = [
            boolean(UserColumns::IsServiceAccount)
                .default(false)
                .to_owned(),
            string_len_null(UserColumns::AccessNotice, 32).to_owned(),
            timestamp_with_time_zone_null(UserColumns::SignatureCertifiedAt).to_owned(),
        ];
        for column in user_columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Invitations::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Invitations::Id))
                    .col(big_integer(Invitations::OrgId))
                    .col(string_len(Invitations::Email, 254))
                    .col(string_len(Invitations::DisplayName, 200))
                    .col(string_len(Invitations::Role, 32))
                    .col(string_len(Invitations::TimeZone, 64))
                    .col(string_len_null(Invitations::Phone, 32))
                    .col(big_integer_null(Invitations::InvitedByUserId))
                    .col(big_integer_null(Invitations::InvitedByOrgId))
                    .col(string_len_uniq(Invitations::SecretHash, 64))
                    .col(integer(Invitations::SentCount).default(1))
                    .col(timestamp_with_time_zone(Invitations::CreatedAt))
                    .col(timestamp_with_time_zone(Invitations::SentAt))
                    .col(timestamp_with_time_zone(Invitations::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Invitations::AcceptedAt))
                    .col(big_integer_null(Invitations::AcceptedUserId))
                    .col(timestamp_with_time_zone_null(Invitations::RevokedAt))
                    .col(integer(Invitations::Version).default(1))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Invitations::Table, Invitations::OrgId)
                            .to(Organizations::Table, Organizations::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_invitations_org_email")
                    .table(Invitations::Table)
                    .col(Invitations::OrgId)
                    .col(Invitations::Email)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PasswordResets::Table)
                    .if_not_exists()
                    .col(big_pk_auto(PasswordResets::Id))
                    .col(big_integer(PasswordResets::OrgId))
                    .col(big_integer(PasswordResets::UserId))
                    .col(big_integer_null(PasswordResets::RequestedByUserId))
                    .col(string_len_uniq(PasswordResets::SecretHash, 64))
                    .col(timestamp_with_time_zone(PasswordResets::CreatedAt))
                    .col(timestamp_with_time_zone(PasswordResets::ExpiresAt))
                    .col(timestamp_with_time_zone_null(PasswordResets::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PasswordResets::Table, PasswordResets::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SignInFailures::Table)
                    .if_not_exists()
                    .col(big_pk_auto(SignInFailures::Id))
                    .col(string_len(SignInFailures::Email, 254))
                    .col(string_len(SignInFailures::ClientAddr, 64))
                    .col(timestamp_with_time_zone(SignInFailures::OccurredAt))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ix_sign_in_failures_email", SignInFailures::Email),
            ("ix_sign_in_failures_client", SignInFailures::ClientAddr),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(SignInFailures::Table)
                        .col(column)
                        .col(SignInFailures::OccurredAt)
                        .to_owned(),
                )
                .await?;
        }

        end_admin_held_credentials(manager).await?;

        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(UserColumns::PasswordIsTemporary)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(boolean(UserColumns::PasswordIsTemporary).default(false))
                    .to_owned(),
            )
            .await?;
        for table in [
            SignInFailures::Table.into_iden(),
            PasswordResets::Table.into_iden(),
            Invitations::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for column in [
            UserColumns::SignatureCertifiedAt,
            UserColumns::AccessNotice,
            UserColumns::IsServiceAccount,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("ix_api_tokens_parent")
                    .table(ApiTokens::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            ApiTokens::RevokedReason,
            ApiTokens::ReadOnly,
            ApiTokens::ParentTokenId,
            ApiTokens::Kind,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ApiTokens::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

/// When the admin-held credentials ended: the day this accounts model took effect. A
/// migration has no injectable clock, so the instant is fixed (the same result whenever
/// and wherever it runs); a revoked token is refused whatever its revocation instant.
fn accounts_model_effective() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_796_083_200, 0).unwrap_or_default()
}

async fn end_admin_held_credentials(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let now = accounts_model_effective();
    let registered_orgs = Query::select()
        .column(Organizations::Id)
        .from(Organizations::Table)
        .and_where(Expr::col(Organizations::ParentOrgId).is_not_null())
        .to_owned();
    let revocations = [
        (
            "minted_for_someone_else",
            Condition::all()
                .add(Expr::col(ApiTokens::IssuedByUserId).is_not_null())
                .add(Expr::col(ApiTokens::IssuedByUserId).ne(Expr::col(ApiTokens::UserId))),
        ),
        (
            "descends_from_hand_over",
            Condition::all().add(Expr::col(ApiTokens::OrgId).in_subquery(registered_orgs)),
        ),
    ];
    for (reason, which) in revocations {
        let people = Query::select()
            .column(ApiTokens::UserId)
            .from(ApiTokens::Table)
            .and_where(Expr::col(ApiTokens::RevokedAt).is_null())
            .cond_where(which.clone())
            .to_owned();
        manager
            .exec_stmt(
                Query::update()
                    .table(Users::Table)
                    .value(UserColumns::AccessNotice, "tokens_revoked")
                    .and_where(Expr::col(UserColumns::Id).in_subquery(people))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(ApiTokens::Table)
                    .value(ApiTokens::RevokedAt, now)
                    .value(ApiTokens::RevokedReason, reason)
                    .and_where(Expr::col(ApiTokens::RevokedAt).is_null())
                    .cond_where(which)
                    .to_owned(),
            )
            .await?;
    }
    // A password somebody else chose is no proof of identity: erased, its holder told
    // (of both changes when their tokens went too).
    // (The marked first: the second pass would otherwise find its own marks.)
    for (already_told, notice) in [
        (true, "password_expired_tokens_revoked"),
        (false, "password_expired"),
    ] {
        let told = if already_told {
            Expr::col(UserColumns::AccessNotice).is_not_null()
        } else {
            Expr::col(UserColumns::AccessNotice).is_null()
        };
        manager
            .exec_stmt(
                Query::update()
                    .table(Users::Table)
                    .value(UserColumns::PasswordHash, Option::<String>::None)
                    .value(UserColumns::AccessNotice, notice)
                    .and_where(Expr::col(UserColumns::PasswordIsTemporary).eq(true))
                    .and_where(told)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    OrgId,
    UserId,
    IssuedByUserId,
    RevokedAt,
    Kind,
    ParentTokenId,
    ReadOnly,
    RevokedReason,
}

/// Columns of `users` (the table name comes from `Users::Table`).
#[derive(DeriveIden)]
enum UserColumns {
    Id,
    PasswordHash,
    PasswordIsTemporary,
    IsServiceAccount,
    AccessNotice,
    SignatureCertifiedAt,
}

#[derive(DeriveIden)]
enum Invitations {
    Table,
    Id,
    OrgId,
    Email,
    DisplayName,
    Role,
    TimeZone,
    Phone,
    InvitedByUserId,
    InvitedByOrgId,
    SecretHash,
    SentCount,
    CreatedAt,
    SentAt,
    ExpiresAt,
    AcceptedAt,
    AcceptedUserId,
    RevokedAt,
    Version,
}

#[derive(DeriveIden)]
enum PasswordResets {
    Table,
    Id,
    OrgId,
    UserId,
    RequestedByUserId,
    SecretHash,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum SignInFailures {
    Table,
    Id,
    Email,
    ClientAddr,
    OccurredAt,
}
