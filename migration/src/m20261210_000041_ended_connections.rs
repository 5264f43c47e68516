use sea_orm_migration::{prelude::*, schema::*};

/// A connection between a sponsor and a CMO can end (`cmo_relationships.connection` =
/// `ended`, a string column: no schema change for the value): who ended it, when and why.
///
/// Expand-only: nullable columns a previous release neither reads nor writes. A previous
/// release running beside this one does not know the value `ended`; it reads such a row
/// only once someone ends a connection, which the upgrade notes ask to leave until every
/// process runs this release.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            big_integer_null(CmoRelationships::EndedByUserId),
            timestamp_with_time_zone_null(CmoRelationships::EndedAt),
            text_null(CmoRelationships::EndReason),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(CmoRelationships::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            CmoRelationships::EndedByUserId,
            CmoRelationships::EndedAt,
            CmoRelationships::EndReason,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(CmoRelationships::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum CmoRelationships {
    Table,
    EndedByUserId,
    EndedAt,
    EndReason,
}
